"""python -m recipes.emollm [--limit N] [--target N] [--concurrency 8] [--trace] [--dry-run] [--out DIR]

EmoLLM: multi-turn dialogues between a help-seeker and a counsellor for every emotion × life-area
scene (16 areas × 27 emotions = 432 scenes; the seed's list has 同情 twice), each ending with the
counsellor and checked turn by turn and as a whole by the critic. Writes the merged run, a file per
scene under exports/by_scene/{area}/{emotion}.jsonl, and self-cognition records.
"""

from recipes.base import recipe_app, run_cli
from recipes.emollm.recipe import EmoLLM

app = recipe_app(EmoLLM(), __doc__)

if __name__ == "__main__":
    run_cli(app)
