"""The pieces of ``python -m ganlab.compare``: read run folders (``collect``), group and summarise them
(``stats``), draw (``plots``) and write the report (``render``)."""
