import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

# Attentive's webhook deliveries skip Django's request handling (a burst is thousands a second); see the class.
from connectors.attentive import AttentiveIntakeDispatch  # noqa: E402  (needs the app registry loaded above)

application = AttentiveIntakeDispatch(application)

# The web pixel's batches too (collector/intake.py): thousands of events a second, anonymous and cookieless.
from collector.intake import CollectorDispatch  # noqa: E402

application = CollectorDispatch(application)
