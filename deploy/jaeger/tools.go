//go:build tools

// Package jaeger pins the Jaeger that deploy/setup builds for the local stack's
// traces: the all-in-one binary (OTLP in, the UI and its query API out), from the
// Go module proxy at the version go.mod and go.sum fix with every dependency.
package jaeger

import _ "github.com/jaegertracing/jaeger/cmd/jaeger"
