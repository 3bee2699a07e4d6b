"""Content rules: meta preambles, refusals, AI self-reference, markdown, placeholders, English.

>>> from agents.rules.base import RuleContext, TextView
>>> preamble(TextView("以下是为您准备的祝福：新年快乐！"), RuleContext()).code.value
'PREAMBLE'
>>> preamble(TextView("今天真好的天气，祝你开心"), RuleContext(kind="greeting")) is None
True
"""

from __future__ import annotations

import re

from agents.rules.base import CJK, RuleContext, RuleHit, TextView, hit, rule, snippet
from agents.rules.dialogue import CHATBOT_CLOSING
from agents.schemas import ReasonCode

_WRITE = r"(?:准备|写|编写|生成|创作|撰写|整理|改写|送上|奉上|献上)"
# What the model was asked to produce (meta when the output talks about it).
_PRODUCT = r"(?:祝福语?|文案|回答|答案|回复|贺词|对话|短信)"
_PRODUCT_ANY = r"(?:祝福语?|文案|回答|答案|回复|贺词|对话|短信|内容|文字)"
# Meta talk about the output itself, at the start of any kind of output. 「以下是几种常见的敬酒礼仪：」
# in an answer is content, not meta: it names neither the reader nor the product.
_META_START = re.compile(
    r"(?:以下|下面)(?:是|为|就是)[^。！？\n]{0,10}?(?:为您|为你|给您|给你|您要的|你要的|我的|"
    + _PRODUCT + r"|" + _WRITE + r"(?:的|好的))"
    r"|(?:以下|下面)(?:是|为)(?:关于|有关)|(?:以下|下面)(?:是|为)[^。！？\n]{0,20}(?:介绍|说明|解答|解释|总结|回答|答案)[：:]"
    r"|(?:当前|这是|这就是)?(?:一[条段则份篇个])?(?:新的)?" + _PRODUCT + r"(?:如下|已生成|已写好)"
    r"|这是(?:一[条段则份篇个])?(?:为您|为你|给您|给你)"
    r"|这是(?:一[条段则份篇个])[^。！？\n]{0,14}" + _PRODUCT + r"\s*[：:]"
    r"|这(?:条|段|则|份|篇)" + _PRODUCT + r"[^。！？\n]{0,14}[：:]"
    r"|这是一个(?:很|非常)?好的问题|好问题[！!，,]|很(?:高兴|荣幸|乐意)(?:为|帮|回答|收到|能|和)"
    r"|(?:以下|下面|接下来)(?:是|为|就是|给出|提供|送上|奉上|附上)?[^。！？\n]{0,20}(?:祝福语?|文案|短信|消息|贺词|回复)[^。！？\n]{0,4}[：:]"
    r"|(?:送给|写给|给|致)[^。！？\n]{1,12}的[^。！？\n]{0,6}(?:祝福语?|贺词|文案)\s*[：:]"
    r"|(?:你|您)?(?:可以|不妨|建议)(?:这样|这么)(?:写|说|表达|发)|参考(?:如下|以下)[：:]"
    r"|这是[^。！？\n]{0,14}(?:祝福语?|文案|回复|回答|贺词)[^。！？\n]{0,3}[：:]"
    r"|[^。！？\n]{0,10}(?:意见|重写|改写)[^。！？\n]{0,8}[：:]"  # 「按照修改意见，重写如下：」
    r"|(?:修改|优化|调整|润色)(?:后|过)的?" + _PRODUCT + r"\s*[：:]"
    r"|(?:作为[^，,。！？\n]{1,10}[，,]\s*)?我来(?:回答|回应|回复|解答|为你|为您|帮你|帮您|写)"
    r"|(?:根据|按照|依照)(?:您|你)的(?:要求|需求|描述|指示)|(?:根据|按照)(?:您|你)提供的(?:信息|内容|资料|要求|描述)"
    r"|(?:我|已)(?:为|给)[^，。！？\n]{1,6}(?:写|准备|生成|创作|撰写)(?:了|好)?(?:一[条段则份篇个])?[^，。！？\n]{0,6}(?:祝福|文案|回复|回答)"
    r"|(?:我|已)(?:为您|为你|给您|给你)" + _WRITE
    + r"|(?:为您|为你|给您|给你)" + _WRITE + r"(?:了|一[条段则份篇个]|以下|如下)"
    r"|(?:here is|here's|sure[,!]|certainly[,!])",
    re.IGNORECASE,
)
# Meta talk anywhere: a closing line about the text, a word count.
_META_ANYWHERE = re.compile(
    r"(?:希望|愿)(?:这|以上|上述|此|我的)(?:条|段|则|份|篇|个|些)?" + _PRODUCT_ANY
    + r"[^。！？\n]{0,12}(?:喜欢|满意|帮助|帮到|用得上|合适|符合|满足|(?:表达|传达)(?:出)?(?:你|您)的)"
    r"|(?:希望|愿)(?:你|您)(?:会|能)?(?:喜欢|满意)(?:这|以上|我)"
    r"|如(?:需|果需要|果想|有需要)[^。！？\n]{0,10}(?:调整|修改|更改|改动|换一[种个])"
    r"|可(?:以)?根据(?:实际情况|实际需要|需要|您的需要|你的需要|具体情况)(?:进行)?(?:修改|调整|替换|增减)"
    r"|(?:以上|上述)(?:祝福语?|内容|回答|文案|信息)[^。！？\n]{0,12}(?:修改|参考|调整)"
    r"|(?:你|您)?可以直接(?:复制|发送|转发|使用)|以上就是|(?:以上|上面)(?:是|就是|为)[^。！？\n]{0,10}(?:为你|为您|我|祝福|回答|文案)"
    r"|(?:这|此|以上|上面|上述)(?:条|段|则|份|篇)?(?:祝福语?|文案|内容|文字|短信|消息)[^。！？\n]{0,12}"
    r"(?:适合(?:发给|送给|用于|在)|(?:语气|风格|用词)(?:亲切|温馨|得体|正式|轻松|真诚)|(?:体现|突出|融入|结合|表达|传达|展现)了对|既[^。！？\n]{1,8}又)"
    r"|(?:需要|要不要|是否需要)我(?:再|帮你|为你|给你|帮您|为您)?(?:写|改|调整|换|生成|提供|修改)"
    r"|我(?:可以|也可以|还可以)(?:再|帮你|为你|帮您|为您)(?:调整|修改|改写|写|换|生成)"
    r"|还有(?:什么|其他|别的)(?:想|要|需要)?(?:了解|知道|问|咨询)的(?:吗|嘛)|(?:这|此)(?:条|段|则)?" + _PRODUCT + r"(?:既|十分|非常)?[^。！？\n]{0,8}得体[：:]"
    r"|很(?:高兴|荣幸|乐意)(?:为(?:你|您)(?:服务|写|解答|回答|效劳)|回答(?:你|您)的)|请查收"
    r"|(?:共|约|一共|总计|全文|合计)\s*\d+\s*个?字|符合(?:你的|您的)?(?:字数)?要求"
    r"|(?:这|此|以上)(?:条|段|则|份|篇)?(?:祝福语?|文案|文字|内容|话)[^。！？\n]{0,12}(?:你的|您的)(?:心意|爱|感谢|关心|情谊|祝福)"
    r"|(?:祝福语?|文案|文字|这段话|这句话)[^。！？\n]{0,8}让(?:对方|他|她|ta|TA)(?:感受到|感到|知道|明白)"
    r"|(?:需要|想要|希望|想)[^。！？\n]{0,12}(?:版本|风格|修改|调整|改动|字数|语气)[^。！？\n]{0,10}(?:告诉我|联系我|说一声|随时)"
    r"|[（(【\[]?字数[：:]|[（(]共?约?\d+个?字[)）]|" + _PRODUCT + r"如下[：:]"
)
# An editor's note (「注：」「备注：」) is meta in a greeting or a spoken turn; in an answer it may be content.
_NOTE = re.compile(r"(?:^|[\n（(【\[])\s*(?:注|备注|说明|PS|温馨提示|小贴士|提示|Tips?|使用建议|发送建议)[：:]", re.IGNORECASE)
# An acknowledgement of the request. Alone it is meta only in a greeting: an answer may open with
# 「当然可以，我是…」 and a counsellor with 「好的，我们试试」. Needs a mark after it: 「好的天气」 is fine.
_ACK_START = re.compile(r"(?:好的|好嘞|好哒|好滴|好呀|当然可以|当然没问题|当然|没问题|收到|明白了|了解了|OK|ok|Ok|Okay|okay|OKAY|Sure|sure)"
                        r"(?:[呢哦呀啦哈]|亲)*[，,！!。.~～\s]")
# In a greeting, any 「以下是/下面是」 opener is meta (a wish never starts like that).
_LIST_START = re.compile(r"(?:以下|下面)(?:是|为)")


# Stray punctuation and particles before a preamble (「！啦~以下是…」) do not hide it.
_JUNK = re.compile(r"[\s，。！？、；：,.!?;:~～…·\-—*#>]*(?:[啦呀哦哟呢吧嘛噢喔嗯]{1,2}[\s，。！？,.!?~～…]+)?"
                   r"(?:(?:亲|嗨|哈喽|嘿|hi|hello)[\s，,！!~～]+)?", re.IGNORECASE)


@rule("preamble", ReasonCode.PREAMBLE, "开头/结尾的套话和元信息（以下是…、好的，…、当前祝福语如下、希望这条祝福…）")
def preamble(view: TextView, ctx: RuleContext) -> RuleHit | None:
    text = view.text
    start = _JUNK.match(text).end()
    ack = _ACK_START.match(text, start)
    m = _META_START.match(text, ack.end() if ack else start)  # 「好的，以下是…」 in any kind
    if m is None and ctx.kind == "greeting":
        m = ack  # a greeting never opens by acknowledging the request
    if m is None and ctx.kind == "greeting":
        m = _LIST_START.match(text, start)
    if m is None:
        m = _META_ANYWHERE.search(text)
    if m is None and ctx.kind != "dialogue_turn":  # a counsellor's sign-off is the chatbot_closing rule's
        m = CHATBOT_CLOSING.search(text)
    if m is None and ctx.kind != "answer":
        m = _NOTE.search(text)
    if m is None:
        return None
    return hit("preamble", f"删掉套话/元信息「{snippet(text, m.span())}」，直接给出正文。", m.span())


_REFUSAL = re.compile(
    r"(?:抱歉|对不起|不好意思)[，,。！!\s]*(?:我|但我|但是我)?(?:目前|暂时|恐怕)?(?:无法|不能|没法|不可以|不便|做不到)"
    r"|我(?:无法|不能|没办法|不便)(?:为你|为您|给你|给您|帮你|帮您|向你|向您)?"
    r"(?:提供|回答|满足|完成|生成|协助|处理|撰写|创作|回应)(?:这|该|此|你|您)?"
    r"|(?:无法|不能)(?:回答|回应)(?:这个|该|此|你的|您的)"
    r"|(?:违反|违背|不符合)(?:了)?(?:我的|相关的?)?(?:使用)?(?:政策|规定|准则|法律法规)"
    r"|(?<!可能)(?<!会)超出(?:了)?我的(?:能力|知识|回答)范围"
    r"|I(?:'m| am) (?:sorry|unable)|I can(?:not|'t) (?:help|assist|provide)",
    re.IGNORECASE,
)


@rule("refusal", ReasonCode.REFUSAL, "拒答（抱歉，我无法… / 我不能提供… / 超出我的能力范围）")
def refusal(view: TextView, ctx: RuleContext) -> RuleHit | None:
    m = _REFUSAL.search(view.text)
    if m is None:
        return None
    return hit("refusal", f"输出是拒答「{snippet(view.text, m.span())}」，请直接完成任务。", m.span())


# Names of chat models: the model speaking of itself, or of another vendor's model, unless the prompt
# (the passages an answer was written from, a greeting's instructions) or the question names it too.
_MODEL_NAMES = r"ChatGPT|OpenAI|GPT-?[34]|通义千问|文心一言|language model"
_AI_SELF = re.compile(
    r"作为(?:一[个名款])?(?:AI|人工智能|语言模型|大语言模型|大模型|聊天机器人|机器人|虚拟助手|智能助手|AI助手|程序|"
    + _MODEL_NAMES + r")"
    r"|我(?:只)?是(?:一[个名款])?(?:AI|人工智能|语言模型|大语言模型|大模型|聊天机器人|虚拟助手|智能助手|AI助手|"
    + _MODEL_NAMES + r")"
    r"|我(?:并)?没有(?:真实的|真正的)?(?:个人)?(?:情感|感情|意识|身体|肉体)"
    r"|as an AI"
    # an assistant's service voice, which a person writing a wish or a counsellor never uses
    r"|我[^。！？；\n]{0,6}(?:为|给)(?:您|你)提供(?:支持|帮助|服务|信息|建议|解答)"
    r"|(?:很|非常)?(?:高兴|乐意|荣幸)(?:能)?(?:为|帮)(?:您|你)(?:服务|效劳|解答)"
    r"|(?:还有|有)(?:什么|任何)(?:其他)?(?:问题|需要)?(?:我)?(?:可以|能)(?:帮|帮助|为)(?:您|你)"
    r"|(?:作为|我是)(?:您|你)的(?:智能)?(?:小)?(?:助手|助理)",
    re.IGNORECASE,
)
_MODEL_NAME = re.compile(_MODEL_NAMES, re.IGNORECASE)


def _name_form(text: str) -> str:
    """GPT-4, gpt 4 and GPT4 alike."""
    return re.sub(r"[\s-]", "", text.lower())


@rule("ai_self_reference", ReasonCode.AI_SELF_REFERENCE,
      "模型自称 AI / 语言模型、提到别家模型（提示词和问题里都没有的），或用助手的服务腔（我在这里为您提供支持、很高兴为您服务）")  # fmt: skip
def ai_self_reference(view: TextView, ctx: RuleContext) -> RuleHit | None:
    """A model name the passages or the question hold is what the answer is about.

    >>> A = RuleContext(kind="answer", prompt="<passage>用文心一言生成对话数据。</passage>")
    >>> ai_self_reference(TextView("文心一言可以生成对话数据。"), A) is None
    True
    >>> ai_self_reference(TextView("GPT4 也能做到。"), RuleContext(prompt="<passage>GPT-4 的价格</passage>")) is None
    True
    >>> ai_self_reference(TextView("我是文心一言，可以生成对话数据。"), A).code.value
    'AI_SELF_REFERENCE'
    >>> ai_self_reference(TextView("ChatGPT祝你新年快乐！"), RuleContext(kind="greeting")).code.value
    'AI_SELF_REFERENCE'
    """
    m = _AI_SELF.search(view.text)
    if m is None and (names := list(_MODEL_NAME.finditer(view.text))):
        given = _name_form(f"{ctx.prompt or ''}\n{ctx.question or ''}")
        m = next((n for n in names if _name_form(n.group(0)) not in given), None)
    if m is None:
        return None
    return hit("ai_self_reference", f"不要自称 AI 或语言模型（「{snippet(view.text, m.span())}」）。", m.span())


_HTML = (r"</?\s*(?:p|br|hr|strong|b|i|em|u|div|span|ul|ol|li|h[1-6]|a|img|table|tr|td|th|font|section|blockquote|code|pre|"
         r"sup|sub|center|small)\b[^>\n]{0,80}?/?>|&(?:nbsp|lt|gt|amp|quot|emsp|ensp|#\d{2,5});")
# Markdown and HTML that never belong in a greeting or a spoken turn.
_MD_ANY = re.compile(
    r"^\s{0,3}#{1,6}\s|^\s{0,3}(?:[-*+•]|\d{1,2}[.)、])\s*\S|\*\*[^*\n]+\*\*|__[^_\n]+__|```|^\s*\|.*\|\s*$"
    r"|^\s*>\s|^\s*(?:标题|题目|主题)[：:]|^\s*[【《][^】》\n]{1,20}[】》]\s*$|^\s*[-*_=]{3,}\s*$"
    r"|\A\s*【[^】\n]{0,10}(?:祝福|贺词|文案|标题|短信|寄语|问候)[^】\n]{0,4}】|" + _HTML,
    re.MULTILINE | re.IGNORECASE,
)
# In an answer, lists and bold are fine; a code fence, HTML or a title line on top is not.
_MD_ANSWER = re.compile(r"```|\A\s{0,3}#{1,6}\s|\A\s*(?:标题|题目)[：:]|" + _HTML, re.IGNORECASE)


@rule("markdown", ReasonCode.MARKDOWN, "祝福语/对话里出现 markdown、HTML 或标题（# 标题、**加粗**、列表、<br>、【标题】）")
def markdown(view: TextView, ctx: RuleContext) -> RuleHit | None:
    text = view.text
    if "\n" not in text and not any(c in text for c in "#*_`|>：:】》-<&"):
        return None  # fast path: one line with no markdown characters at all
    m = (_MD_ANSWER if ctx.kind == "answer" else _MD_ANY).search(text)
    if m is None:
        return None
    return hit("markdown", f"不要 markdown/HTML 格式或标题（「{snippet(text, m.span()).strip()}」），只要纯文本。", m.span())


# A speaker label: the generator's transcript format leaked (EmoLLM's parser left 「医生：」 inside
# 221 of 5072 outputs), or the model announced its own name or the output kind (回复：、祝福语：).
_LABELS = (r"医生|病人|患者|来访者|求助者|咨询者|咨询师|心理咨询师|心理医生|用户|助手|助理|小助手|AI助手|AI|机器人|客服|模型|问|答|回复|回答|答案|"
           r"祝福语?|输出|正文|Q|A|User|Assistant|Answer|Response|Output|Bot")
_SPEAKER = re.compile(r"(?:^|\n)\s*(?:[【\[*]{0,2})\s*(?:" + _LABELS + r")\s*(?:[】\]*]{0,2})\s*[：:]"
                      r"|^\s*[\u4e00-\u9fffA-Za-z]{1,6}的?(?:回复|回答|答复|答道)\s*[：:]"
                      r"|^\s*[【\[](?:" + _LABELS + r")[】\]]"  # 【回复】
                      r"|[（(](?:咨询师|心理咨询师|来访者|求助者|助手|用户|医生|患者)[）)]", re.IGNORECASE)
_OWN_NAME = re.compile(r"你是(?:一[个名位])?[「“\"]?([\u4e00-\u9fffA-Za-z]{2,8}?)[」”\"]?[，,。、]")


def _own_names(ctx: RuleContext) -> re.Pattern[str] | None:
    """The assistant's name from its system prompt (「你是天机，…」 → 天机) as a label pattern."""
    names = {m.group(1) for m in _OWN_NAME.finditer(ctx.prompt or "")} - {"一个", "一名", "一位"}
    if not names:
        return None
    return re.compile(r"^\s*(?:" + "|".join(map(re.escape, sorted(names, key=len, reverse=True))) + r")\s*"
                      r"(?:的?(?:回复|回答|答复))?\s*[：:]")


@rule("speaker_label", ReasonCode.SPEAKER_LABEL, "输出带说话人标签（回复：、答：、助手：、咨询师：、医生：），或多轮被拼进了一轮")
def speaker_label(view: TextView, ctx: RuleContext) -> RuleHit | None:
    m = _SPEAKER.search(view.text)
    if m is None and ctx.prompt:
        own = ctx.cached("own_names", lambda: _own_names(ctx))
        m = own.match(view.text) if own is not None else None  # type: ignore[union-attr]
    if m is not None:
        label = m.group(0).strip()
        return hit("speaker_label", f"输出里有说话人标签「{label}」，每轮只写这一方要说的话，不要标签。", m.span())
    if ctx.kind == "dialogue_turn" and view.question:
        m = _SPEAKER.search(view.question)
        if m is not None:
            return hit("speaker_label", f"来访者的话带着标签「{m.group(0).strip()}」，请只写来访者说的话。",
                       on_input=True)
    if ctx.kind == "answer" and view.question:  # the asker wrote a label, or its own answer, into the question
        m = _SPEAKER.search(view.question) or ANSWER_IN_QUESTION.search(view.question)
        if m is not None:
            return hit("speaker_label", f"问题里带着标签「{m.group(0).strip('？?。 ')}」（提问里写进了答案），"
                                        f"问题只写要问的话。", on_input=True)
    return None


#: 「…是什么？答：天命人…」: a question that carries its own answer (seen from a 0.5B asker).
ANSWER_IN_QUESTION = re.compile(r"[？?。]\s*(?:答案?|回答|解答)\s*[：:]")


_SLOT_WORDS = r"(?:姓名|名字|称呼|名称|城市名?|地名|公司名?|单位|项目名?|日期|时间|地点|具体|填写|插入|替换|此处|这里|在此|某|署名|落款|签名)"
_PLACEHOLDER = re.compile(
    r"\{\{?\s*[A-Za-z_" + CJK + r"][^{}\n]{0,20}\s*\}\}?"
    r"|[\[【<〈（(]\s*(?:(?:你|您|对方|收件人|收礼人|自己)的?(?:名字|姓名|称呼|名称)|姓名|名字|称呼|对方|收件人|公司名称?|"
    r"日期|时间|地点|此处|这里|在此|插入|填写|name|date)[^\]】>〉）)\n]{0,12}[\]】>〉）)]"
    r"|[\[［]\s*(?=[^\]］\n]*[" + CJK + r"])[^\]］\n\d^][^\]］\n]{0,14}[\]］](?!\()"  # [老师姓名] [开发商]: Chinese never uses [] (a link [茴香豆](url) does)
    r"|[<〈]\s*[" + CJK + r"][" + CJK + r"\w]{1,12}\s*[>〉]"
    r"|【[^】\n]{0,10}" + _SLOT_WORDS + r"[^】\n]{0,6}】"
    r"|[（(][^）)\n]{0,10}(?:姓名|名字|称呼|名称|地名|城市名|公司名|项目名称?|署名|落款|签名)[）)]"
    r"|\[\s*(?:your|recipient|name|date|company|insert)[^\]\n]{0,20}\]"
    r"|[（(]\s*(?:此处|这里|在此|请)(?:可以?)?(?:填写|插入|加入|补充|替换|写上|写下|填入)[^）)\n]{0,24}[）)]"
    r"|_{3,}|(?<![A-Za-z])(?:[Xx]{2,}|×{2,})(?![A-Za-z])|某某|%[sd]\b|\$\{\w+\}",
    re.IGNORECASE,
)


@rule("placeholder", ReasonCode.PLACEHOLDER, "未填充的占位符（{name}、【姓名】、XXX、某某）")
def placeholder(view: TextView, ctx: RuleContext) -> RuleHit | None:
    m = _PLACEHOLDER.search(view.text)
    if m is None:
        return None
    return hit("placeholder", f"有未填充的占位符「{m.group(0)}」，请换成具体内容或删掉。", m.span())


_WORD = re.compile(r"[A-Za-z]{4,}")
#: Loanwords Chinese text normally carries; never a leak.
LOANWORDS = frozenset({
    "offer", "boss", "app", "steam", "kpi", "okr", "vlog", "blog", "logo", "wifi", "emoji", "style", "bug",
    "switch", "xbox", "iphone", "ipad", "email", "party", "cosplay", "plan", "level", "buff", "combo", "demo",
    "unreal", "engine", "unity", "windows", "android", "online", "office", "excel", "word", "ppt", "ceo", "hr",
    "gpu", "cpu", "dlc", "mvp", "npc", "rpg", "solo", "pose", "vip", "fans", "happy", "good", "nice", "yyds",
})
_BRAND = re.compile(r"[A-Za-z]*[A-Z][a-z]*[A-Z][A-Za-z]*")  # EmoLLM, ChatGPT, PlayStation: names
# Two or more English words in a row with at least 8 letters: a phrase, not a loanword
# (「offer」「vlog」「iPhone 15 Pro」 pass; 「happy birthday」「Here is your wish」 do not).
_PHRASE = re.compile(r"[A-Za-z]{2,}(?:[ ,'\-]+[A-Za-z]{2,})+")
_ASCII_LETTER = re.compile(r"[A-Za-z]")
# A gloss in brackets (游戏科学（Game Science）), a quotation (“An apple a day…”) or a URL is content.
_EXEMPT = re.compile(r"(?:https?://|www\.)\S+|（[^）]*）|\([^)]*\)|“[^”]*”|「[^」]*」|\"[^\"]*\"")


_EN_WORD = re.compile(r"[A-Za-z]{2,}")


def _is_title_case(phrase: str) -> bool:
    return all(w[0].isupper() for w in _EN_WORD.findall(phrase))


@rule("english_leak", ReasonCode.ENGLISH_LEAK,
      "中文输出里混进英文句子/短语（缩写、品牌名、括号里的注释、引文不算）；allow_english 关闭")  # fmt: skip
def english_leak(view: TextView, ctx: RuleContext) -> RuleHit | None:
    text = view.text
    if ctx.allow_english or _ASCII_LETTER.search(text) is None:
        return None
    visible = len(text) - text.count(" ") - text.count("\n")
    text = _EXEMPT.sub(lambda m: " " * len(m.group(0)), text)  # keep spans aligned
    for m in _PHRASE.finditer(text):
        phrase = m.group(0)
        if sum(c.isalpha() for c in phrase) < 8:
            continue
        if ctx.kind != "greeting" and _is_title_case(phrase):
            continue  # a proper name (PlayStation Network) inside an answer
        if all(w.lower() in LOANWORDS for w in _EN_WORD.findall(phrase)):
            continue  # Unreal Engine, Boss KPI: loanwords side by side
        return hit("english_leak", f"中文回答里出现了英文「{snippet(view.text, m.span())}」，请用中文。", m.span())
    names = ctx.kind != "greeting"  # in an answer or a talk, a capitalised word is a name (Black Myth, Wukong)
    letters = sum(len(w) for w in _WORD.findall(text)
                  if not _BRAND.fullmatch(w) and w.lower() not in LOANWORDS and not (names and w[0].isupper()))
    if letters >= 8 and letters / visible > ctx.english_ratio:  # one loanword is not a leak
        return hit("english_leak", f"英文占比 {letters / visible:.0%}，请用中文回答。")
    return None
