"""python -m recipes.wulewule [--limit N] [--target N] [--concurrency 8] [--trace] [--dry-run] [--out DIR]

悟了悟了 (wulewule): questions about Black Myth: Wukong (黑神话：悟空), over the aspects in
wulewule.yaml, answered by RAG over knowledge/bases/wulewule and checked by the critic; plus
incremental-pretraining chunks and self-cognition records. With no LLM endpoint configured it
still builds the index and writes the chunks, then says how to configure one.
"""

from recipes.base import recipe_app, run_cli
from recipes.wulewule.recipe import Wulewule

app = recipe_app(Wulewule(), __doc__)

if __name__ == "__main__":
    run_cli(app)
