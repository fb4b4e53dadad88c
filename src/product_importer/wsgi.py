"""The WSGI app, for servers other than `product-importer serve`.

`serve` is how the app is meant to run: it sets gunicorn's limits and worker class (a long
address answered 414 in the API's JSON, a quick stop). Plain gunicorn needs them named:
`gunicorn --limit-request-line 8190 --worker-class product_importer.gunicorn_app.WebWorker
product_importer.wsgi:app`.
"""

from . import create_app

app = create_app()
