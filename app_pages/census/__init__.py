"""The Census page: what every head does across a corpus (issue 16)."""
