"""Read queries of vulnerability management, written once for the API (``garrison.server.api``) and
the console (``garrison.server.web``): the rows each page or list reads and the JSON shape of each
entity. Neither front end writes SQL of its own (``tests/web/test_console_no_sql.py``)."""
