"""The ruozhiba recipe: the COIG-CQIA 弱智吧 subset as OpenAI/XTuner training data with a seeded split.

Run it with `python -m recipes.ruozhiba --input FILE`; the conversion itself is in `recipes.ruozhiba.convert`.
"""
