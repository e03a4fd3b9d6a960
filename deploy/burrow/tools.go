//go:build tools

// Package burrow pins the Burrow that deploy/setup builds for the local stack:
// Debian 12's Burrow (1.2.1) cannot read Kafka 4, and the Go module proxy serves
// 1.9.6 as a module (go.mod and go.sum here fix it and every dependency).
package burrow

import _ "github.com/linkedin/Burrow"
