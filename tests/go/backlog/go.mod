module tracer-tests/backlog

go 1.21
