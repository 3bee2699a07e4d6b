"""EmoLLM: multi-turn counselling dialogues over emotion × life-area scenes."""
