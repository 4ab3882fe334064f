"""SLA reporting: how well the team keeps the acknowledgement and assessment promises.

    service.py   build_figures: read, then compute (the entry point for any view)
    figures.py   case rows -> Figures (pure: the one computation every view shares)
    query.py     the rows and the cases at risk, read from the database
    export.py    Figures -> JSON and CSV (stable field names)
    charts.py    Figures -> SVG charts (matplotlib)
    html.py      Figures -> one self-contained HTML page
    monthly.py   the daemon's monthly mail to ``[report] monthly_to``
    cli.py       ``mailbot report``

The core never imports this package; it reads the core's models and calendar. This file
imports nothing, so that ``mailbot --help`` stays quick.
"""

