module tracer-tests/pingpong

go 1.21
