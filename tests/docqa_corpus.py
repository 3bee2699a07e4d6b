"""A small mixed folder of one's own documents for the docqa tests: Markdown with headings, a PDF
(reportlab), a Word file with heading styles (python-docx), a GB18030 text file, and a file too short
to ask about."""

from __future__ import annotations

from pathlib import Path

MANUAL = """# 净水器使用手册

## 安装步骤

安装前请关闭进水阀门，并确认自来水压力在零点一到零点四兆帕之间。主机应固定在橱柜内侧，距离地面不少于十厘米，并远离热源和阳光直射。连接进水管时要缠绕随机附带的生料带，拧紧后缓慢打开阀门，观察三分钟确认接口没有渗水。排水管的出口必须高于地漏，防止污水倒灌进入机器。

首次使用前需要冲洗滤芯，打开龙头连续放水十五分钟，前三杯水不要饮用。冲洗过程中机器会发出轻微的嗡嗡声，这是增压泵在正常工作。

## 滤芯更换

PP 棉滤芯建议每三个月更换一次，活性炭滤芯每六个月更换一次，反渗透膜一般两年更换一次。更换滤芯前必须断开电源并关闭进水阀，然后逆时针旋下滤瓶。取出旧滤芯后要用清水冲洗滤瓶内壁，再装入新滤芯并顺时针拧紧。

更换完成后打开进水阀，检查滤瓶接口是否漏水，再接通电源放水五分钟。如果面板上的滤芯指示灯仍然闪烁，长按复位键三秒即可清零。

## 故障排除

如果出水量明显变小，通常是 PP 棉滤芯堵塞，应优先更换前置滤芯。如果机器频繁启动，可能是压力桶气压不足或者管路存在渗漏，请逐个检查接头。如果出水有异味，多半是活性炭滤芯已经失效，或者机器长时间没有使用导致水质变差。

设备报警并且指示灯红色常亮时，说明检测到漏水，机器会自动关闭进水。擦干机箱底部的积水后重新通电即可恢复，若反复报警请联系售后服务热线。
"""

# A Markdown tutorial that quotes shell code: its `# comment` lines are no headings.
GUIDE_MD = """# 数据制作教程

## **一、前言**

本教程讲怎样调用模型接口批量生成问答数据，并用茴香豆的检索服务给出回答。

### 2. **开启`huixiangdou`服务**

先启动服务，再用下面的命令测试接口是否可用：

```bash
# cURL 测试状态回调接口
curl -X POST http://127.0.0.1:23333/huixiangdou_inference
# cURL 测试同步接口
curl -X POST http://127.0.0.1:23333/huixiangdou_stream
```

## 三、[最终数据格式](https://example.com/format)

每条数据是一行 JSON。
"""

WARRANTY = """保修条款

本产品整机保修一年，增压泵和电路板等主要部件保修三年，保修期从购买发票上的日期开始计算。保修期内因产品质量问题造成的故障，公司提供免费上门维修服务。

人为损坏、私自拆机、使用非原厂滤芯或者在水压超出说明书范围的环境下使用导致的故障，不在免费保修范围之内。滤芯属于消耗品，不提供保修，用户需要按时自行购买更换。

办理保修时请出示购买发票和机身条码，客服会在二十四小时内与您联系预约上门时间。
"""

SAFETY = [("安全须知", 1), ("用电安全", 2),
          ("机器必须使用带有接地线的三孔插座，插座额定电流不低于十安培。请勿用湿手插拔电源插头，"
           "也不要在电源线上放置重物。长期外出时应拔下电源插头并关闭进水阀门。", 0),
          ("儿童与宠物", 2),
          ("请勿让儿童攀爬或者玩耍机器，热水功能开启时尤其要注意防止烫伤。宠物可能咬坏水管，"
           "安装时应把管路藏在橱柜内部。标签失败：这一段的标签模型总是答不出来。", 0)]

PDF_LINES = ["Water quality report", "TDS 45 mg/L after filtration, 320 mg/L before.",
             "The reverse osmosis membrane removes about 95 percent of dissolved solids.",
             "Test every six months with the bundled TDS pen; values above 100 mean the membrane needs a check."]


def write_pdf(path: Path, lines: list[str]) -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path), pagesize=A4)
    y = 800
    for line in lines:
        pdf.drawString(60, y, line)
        y -= 24
    pdf.save()


def write_docx(path: Path, parts: list[tuple[str, int]]) -> None:
    import docx

    document = docx.Document()
    for text, level in parts:
        if level:
            document.add_heading(text, level=level)
        else:
            document.add_paragraph(text)
    document.save(str(path))


def make_corpus(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manual.md").write_text(MANUAL, encoding="utf-8")
    (folder / "warranty.txt").write_bytes(WARRANTY.encode("gb18030"))
    write_docx(folder / "safety.docx", SAFETY)
    write_pdf(folder / "report.pdf", PDF_LINES)
    (folder / "note.md").write_text("备注：见上。", encoding="utf-8")  # too short to ask about
    return folder


SECOND = """# 商用机型补充说明

## 大流量机型

商用大流量机型每小时产水四百升，适合学校和办公楼使用。它配有两支并联的反渗透膜，单支膜出现故障时另一支仍可维持一半的产水量。商用机型需要独立的十六安培电源回路，并建议加装前置软水器以延长膜的寿命。
"""


def make_second(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "commercial.md").write_text(SECOND, encoding="utf-8")
    return folder
