module tracer-tests/demo

go 1.21
