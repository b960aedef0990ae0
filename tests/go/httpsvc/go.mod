module tracer-tests/httpsvc

go 1.21
