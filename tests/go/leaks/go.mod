module tracer-tests/leaks

go 1.21
