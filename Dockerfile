# One image for every prefloop service (web, migrations, sampler, training worker).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /srv/prefloop

# Dependencies first so code edits do not reinstall torch. On Linux, PyPI's torch 2.13.0 wheel
# carries CUDA, which the GPU worker uses; the web and migration services run it on the CPU.
COPY pyproject.toml README.md ./
RUN mkdir -p app trainer && touch app/__init__.py trainer/__init__.py \
    && pip install torch==2.13.0 && pip install -e . \
    && rm -rf app trainer

COPY alembic.ini ./
COPY app ./app
COPY trainer ./trainer
COPY migrations ./migrations
COPY templates ./templates
COPY static ./static

ENV PREFLOOP_DATA_DIR=/data PREFLOOP_HOST=0.0.0.0
VOLUME ["/data"]
EXPOSE 8000
CMD ["prefloop", "serve"]
