"""The Attention page: `page.py` (inputs and the record), `tabs.py` (one function per view),
`passes.py` (cached passes besides the page's record), `text.py` (its English/中文 text)."""
