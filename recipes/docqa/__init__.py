"""docqa: your own folders of documents → verified QA data, with no code."""
