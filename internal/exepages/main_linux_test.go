package exepages

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv("EXEPAGES_HELPER") == "1" {
		helper()
		return
	}
	goleak.VerifyTestMain(m)
}
