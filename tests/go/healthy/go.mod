module tracer-tests/healthy

go 1.21
