module github.com/harkapp/hark

go 1.24

require (
	go.etcd.io/bbolt v1.4.3
	go.uber.org/goleak v1.3.0
)

require golang.org/x/sys v0.29.0 // indirect
