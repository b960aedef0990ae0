module tracer-tests/churn

go 1.21
