"""An example third-party pledgescan plugin: a check (``checks``) and a report format (``reporter``)."""
