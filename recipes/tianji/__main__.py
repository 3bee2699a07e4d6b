"""python -m recipes.tianji [--limit N] [--target N] [--concurrency 8] [--trace] [--dry-run] [--out DIR]

天机 (Tianji): greetings for 28 kinds of relatives and colleagues × 13 occasions × 3 styles
(正常 / 小红书 / 严肃), written by the persona responder with few-shot examples and random
constraints, and checked by the critic's rules (honorifics, emoji for 小红书, preambles, leading
punctuation, role–scene fit) and its LLM judge. Lists, styles and the matrix live in tianji.yaml.
"""

from recipes.base import recipe_app, run_cli
from recipes.tianji.recipe import Tianji

app = recipe_app(Tianji(), __doc__)

if __name__ == "__main__":
    run_cli(app)
