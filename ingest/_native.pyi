# Types of the native metric lane (native/src/lib.rs), built by setuptools-rust.

def metric_rows(
    values: list[bytes | None], latest: int, oldest: int, max_bytes: int, wire_version: int
) -> tuple[bytes, list[int], list[bytes], int, int | None, int]: ...
