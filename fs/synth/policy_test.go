package synth

import (
	"errors"
	"io"
	iofs "io/fs"
	"syscall"
	"testing"
)

// chmodDir is a directory whose mode root may change.
type chmodDir struct {
	FuncDir
	mode iofs.FileMode
}

func (d *chmodDir) Setattr(c *Caller, mode *iofs.FileMode, _, _ *uint32) error {
	if !c.Root() {
		return syscall.EPERM
	}
	if mode != nil {
		d.mode = *mode
	}
	return nil
}

func TestSetattrPolicy(t *testing.T) {
	own := func() (uint32, uint32) { return 1000, 1000 }
	ctl := &FuncFile{Ino: NewIno(), Mode: 0o666} // root's, anyone writes
	ro := &FuncFile{Ino: NewIno(), Mode: 0o444}  // root's, read-only
	mine := &FuncFile{Ino: NewIno(), Mode: 0o600, Owner: own}
	dir := &chmodDir{FuncDir: *NewDir(StaticEntries())}
	user, other, root := &Caller{Uid: 1000, Gid: 1000}, &Caller{Uid: 2000, Gid: 2000}, &Caller{}
	zero, five := uint64(0), uint64(5)
	mode := iofs.FileMode(0o700)
	for _, tc := range []struct {
		what string
		c    *Caller
		n    Node
		r    SetattrReq
		want syscall.Errno
	}{
		{"truncate 0, may write", user, ctl, SetattrReq{Size: &zero}, 0},
		{"truncate 0, may not write", user, ro, SetattrReq{Size: &zero}, syscall.EACCES},
		{"truncate 0 through an open file", other, mine, SetattrReq{Size: &zero, Open: true}, 0},
		{"truncate 5", root, ctl, SetattrReq{Size: &five}, syscall.EPERM},
		{"truncate a directory", root, dir, SetattrReq{Size: &zero}, syscall.EISDIR},
		{"touch, owner", user, mine, SetattrReq{Times: true}, 0},
		{"touch, writer", user, ctl, SetattrReq{Times: true}, 0},
		{"touch, neither", user, ro, SetattrReq{Times: true}, syscall.EACCES},
		{"touch, root", root, ro, SetattrReq{Times: true}, 0},
		{"touch -d, owner", user, mine, SetattrReq{Times: true, TimesGiven: true}, 0},
		{"touch -d, writer", user, ctl, SetattrReq{Times: true, TimesGiven: true}, syscall.EPERM},
		{"touch -d, root", root, ctl, SetattrReq{Times: true, TimesGiven: true}, 0},
		{"chmod, no Setattrer", root, ctl, SetattrReq{Mode: &mode}, syscall.EPERM},
		{"chmod by a user", user, dir, SetattrReq{Mode: &mode}, syscall.EPERM},
		{"chmod by root", root, dir, SetattrReq{Mode: &mode}, 0},
		{"nothing", other, ro, SetattrReq{}, 0},
	} {
		if got := Errno(Setattr(tc.c, tc.n, tc.r)); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.what, got, tc.want)
		}
	}
	if dir.mode != 0o700 {
		t.Errorf("chmod by root left mode %v", dir.mode)
	}
}

func TestAccessPolicy(t *testing.T) {
	grp := func() (uint32, uint32) { return 1000, 5 }
	f := &FuncFile{Ino: NewIno(), Mode: 0o750, Owner: grp}
	ro := &FuncFile{Ino: NewIno(), Mode: 0o644}
	for _, tc := range []struct {
		what string
		c    *Caller
		n    Node
		mask uint32
		ok   bool
	}{
		{"owner rwx", &Caller{Uid: 1000, Gid: 1000}, f, MayRead | MayWrite | MayExec, true},
		{"supplementary group r-x", &Caller{Uid: 2000, Gid: 2000, Groups: []uint32{5}}, f, MayRead | MayExec, true},
		{"supplementary group w", &Caller{Uid: 2000, Gid: 2000, Groups: []uint32{5}}, f, MayWrite, false},
		{"others", &Caller{Uid: 3000, Gid: 3000}, f, MayRead, false},
		{"root writes a read-only file", &Caller{}, ro, MayWrite, true},
		{"root executes what nobody may", &Caller{}, ro, MayExec, false},
		{"no bits asked", &Caller{Uid: 3000}, f, 0, true},
	} {
		err := Access(tc.c, tc.n, tc.mask)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, syscall.EACCES)) {
			t.Errorf("%s: %v, want ok=%v", tc.what, err, tc.ok)
		}
	}
}

func TestOpenPolicy(t *testing.T) {
	var got int
	f := &FuncFile{Ino: NewIno(), Mode: 0o666, OpenFunc: func(_ *Caller, flags int) (Handle, error) {
		got = flags
		return &BytesHandle{}, nil
	}}
	if _, err := Open(&Caller{}, f, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_TRUNC|syscall.O_CLOEXEC|syscall.O_NOCTTY); err != nil {
		t.Fatal(err)
	}
	if got != syscall.O_WRONLY|syscall.O_TRUNC {
		t.Errorf("the file's Open saw flags %#o, want O_WRONLY|O_TRUNC", got)
	}
	d := NewDir(StaticEntries())
	if h, err := Open(&Caller{}, d, syscall.O_RDONLY); h != nil || err != nil {
		t.Errorf("open a directory for reading: %v %v", h, err)
	}
	if _, err := Open(&Caller{}, d, syscall.O_RDWR); !errors.Is(err, syscall.EISDIR) {
		t.Errorf("open a directory for writing: %v, want EISDIR", err)
	}
	nilh := &FuncFile{Ino: NewIno(), OpenFunc: func(*Caller, int) (Handle, error) { return nil, nil }}
	if _, err := Open(&Caller{}, nilh, syscall.O_RDONLY); !errors.Is(err, syscall.EIO) {
		t.Errorf("open returning no handle: %v, want EIO", err)
	}
}

func TestReadWriteResults(t *testing.T) {
	for _, tc := range []struct {
		what  string
		f     func(int, error) (int, syscall.Errno)
		n     int
		err   error
		wantN int
		want  syscall.Errno
	}{
		{"read data then error", ReadResult, 3, syscall.EIO, 3, 0},
		{"read EOF", ReadResult, 0, io.EOF, 0, 0},
		{"read other error", ReadResult, 0, errors.New("broken"), 0, syscall.EIO},
		{"read interrupted", ReadResult, 0, syscall.EINTR, 0, syscall.EINTR},
		{"write part then interrupt", WriteResult, 2, syscall.EINTR, 2, 0},
		{"write refused", WriteResult, 0, syscall.EINVAL, 0, syscall.EINVAL},
		{"write whole", WriteResult, 5, nil, 5, 0},
	} {
		n, e := tc.f(tc.n, tc.err)
		if n != tc.wantN || e != tc.want {
			t.Errorf("%s: %d %v, want %d %v", tc.what, n, e, tc.wantN, tc.want)
		}
	}
}
