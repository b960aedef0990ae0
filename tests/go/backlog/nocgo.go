//go:build !cgo

package main

// useCgo is a no-op in builds without cgo.
func useCgo() {}
