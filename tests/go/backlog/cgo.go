//go:build cgo

package main

// int backlog_answer(void) { return 42; }
import "C"

// useCgo makes one call through cgo so the cgo build really links C code
// (external linking, a C runtime, extra threads).
func useCgo() {
	if C.backlog_answer() != 42 {
		panic("cgo call failed")
	}
}
