"""Storage of segments for keyword and dense retrieval."""
