"""python -m recipes.docqa --knowledge DIR [--knowledge DIR2 …] --name NAME [--limit N] [--dry-run] [--out DIR]

docqa: questions from your own documents (md, txt in any Chinese encoding, pdf, docx, html, json, csv):
per chunk (more for longer chunks), across two related chunks and by tag, each written for one
genre × audience pair, answered from the whole knowledge base and checked by the critic. With no YAML;
`zaoshu new NAME --knowledge DIR` writes an editable one (run it with --config NAME.yaml). The run
folder keeps tags.yaml (the editable tag tree) and stats.json accounts for every chunk.
"""

from recipes.base import recipe_app, run_cli
from recipes.docqa.recipe import DocQA

app = recipe_app(DocQA(), __doc__)

if __name__ == "__main__":
    run_cli(app)
