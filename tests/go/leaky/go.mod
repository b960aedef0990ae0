module tracer-tests/leaky

go 1.21
