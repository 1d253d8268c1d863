"""Streamlit pages of Attention Studio. Each page only wires widgets to engine/ and viz/."""
