// Package web is the HTTP plumbing shared by every function: JSON errors in
// one place, request ids, access logs, panic recovery, health and readiness
// endpoints, client IPs behind trusted proxies, bounded JSON decoding and a
// server that drains in-flight requests on shutdown.
package web
