# One image for every app component; docker-compose.yml picks the Procfile entry to run.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VAR_DIR=/app/var \
    PYTHONPATH=/app

WORKDIR /app
COPY . .
RUN pip install . \
    && DJANGO_DEBUG=true python manage.py collectstatic --no-input \
    && useradd --create-home --uid 1000 app \
    && mkdir -p /app/var && chown -R app /app/var

USER app
EXPOSE 8000
CMD ["honcho", "start", "--no-prefix", "web"]
