"""What two or more pages use: the sidebar (`sidebar`), cached model loading and attention
runs (`models`), the figure-with-download control (`download`), English/中文 lookup (`i18n`),
widget state (`widget_state`) and small numbers and tables (`numbers`)."""
