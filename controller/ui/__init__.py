"""The operator web page (``/ui/``): server-rendered HTML (Jinja2, autoescaped), one CSS and one
JS file served by the controller itself, English and Russian labels. See docs/ui.md."""
