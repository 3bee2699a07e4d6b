"""悟了悟了 (wulewule): Black Myth: Wukong QA grounded by RAG, pretraining chunks, self-cognition."""
