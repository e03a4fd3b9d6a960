//go:build tools

// Package jaeger pins the Jaeger that deploy/setup builds for the local stack's
// traces: its all-in-one binary (the OTLP receiver, an in-memory store and its query
// API in one process), from the Go module proxy at the version go.mod and go.sum fix.
// deploy/setup builds it in a copy of that module, patched (memory-only.patch), under
// Jaeger's own go.mod and go.sum, which pin its dependencies.
package jaeger

import _ "github.com/jaegertracing/jaeger/cmd/all-in-one"
