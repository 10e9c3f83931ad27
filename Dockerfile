# sfetl connector image. Build: docker build -t sfetl/source-salesforce:0.1.0 .
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY link ./link
COPY src ./src
COPY crates ./crates
COPY spec ./spec
COPY fixtures ./fixtures
RUN cargo build --release --locked --bin sfetl

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL io.airbyte.name="sfetl/source-salesforce" \
      io.airbyte.version="0.1.0"
ENV AIRBYTE_ENTRYPOINT="sfetl"
COPY --from=build /src/target/release/sfetl /usr/local/bin/sfetl
USER 65532:65532
ENTRYPOINT ["sfetl"]
