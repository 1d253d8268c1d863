"""The masks page: `page.py` and its English/中文 text table in `text.py`."""
