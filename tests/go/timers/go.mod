module tracer-tests/timers

go 1.21
