# The service image: worker, starter (also `migrate` and the console, `serve`) and the mock DSP.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
RUN useradd --create-home --uid 10001 app

COPY . .
# The production dependencies only: no dev stack wheels (extra `dev`), no test tools (`test`).
RUN pip install .

USER app
EXPOSE 9100 8000
CMD ["python", "worker.py"]
