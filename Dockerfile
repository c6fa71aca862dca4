# Build a wheel in one stage, install it in a slim runtime that runs as a non-root user.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY domain domain
COPY policies policies
COPY service service
COPY adapters adapters
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 returns
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER returns
WORKDIR /home/returns
ENV RETURNS_LOG_FORMAT=json
EXPOSE 8000
# RETURNS_DATABASE_URL must point at PostgreSQL; the embedded database is for laptops.
CMD ["returns", "serve", "--host", "0.0.0.0", "--port", "8000"]
