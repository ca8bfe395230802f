package srv

import (
	iofs "io/fs"

	"bproc/fs/synth"

	"github.com/hugelgupf/p9/p9"
)

// p9Mode converts an io/fs mode to a 9P mode.
func p9Mode(m iofs.FileMode) p9.FileMode { return p9.FileMode(synth.UnixMode(m)) }
