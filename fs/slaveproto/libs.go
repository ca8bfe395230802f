package slaveproto

import "encoding/json"

// Lib is one file a dynamically linked binary needs: its ELF interpreter
// (Interp) or a shared library, at the path where the master found it,
// shipped like the binary from slave/bin/HASH.
type Lib struct {
	Path   string `json:"path"`
	Hash   string `json:"hash"`
	Size   int64  `json:"size"`
	Public bool   `json:"public,omitempty"`
	Interp bool   `json:"interp,omitempty"`
}

type libFields Lib

type wireLib struct {
	*libFields
	Path exact `json:"path"`
}

// MarshalJSON encodes l with its path byte-exact, as Msg's.
func (l Lib) MarshalJSON() ([]byte, error) {
	return json.Marshal(wireLib{libFields: (*libFields)(&l), Path: exact(l.Path)})
}

// UnmarshalJSON decodes what MarshalJSON encodes.
func (l *Lib) UnmarshalJSON(b []byte) error {
	var f libFields
	w := wireLib{libFields: &f}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*l = Lib(f)
	l.Path = string(w.Path)
	return nil
}
