package srv

import (
	"context"
	"errors"
	iofs "io/fs"
)

var errTODO = errors.New("srv: client not implemented yet")

// Client is a 9P connection to a served tree.
type Client struct{}

// File is an open file on a Client. Read and Write keep an offset (streams
// ignore it). One goroutine per File; different Files of one Client may be
// used concurrently.
type File struct{}

// Dial connects to addr (host:port, port 2223 when missing), performs the
// handshake claiming h, negotiates 9P with msize 1 MiB and attaches.
func Dial(ctx context.Context, addr string, key []byte, h Hello) (*Client, error) {
	return nil, errTODO
}

// Open opens name, slash-separated and relative to the root ("node/3/ctl"),
// with os.O_* flags.
func (c *Client) Open(name string, flag int) (*File, error) { return nil, errTODO }

// Stat describes name.
func (c *Client) Stat(name string) (iofs.FileInfo, error) { return nil, errTODO }

// ReadDir lists directory name.
func (c *Client) ReadDir(name string) ([]iofs.DirEntry, error) { return nil, errTODO }

// Chmod changes name's permission bits.
func (c *Client) Chmod(name string, mode iofs.FileMode) error { return errTODO }

// Chown changes name's owner and group; -1 leaves one unchanged.
func (c *Client) Chown(name string, uid, gid int) error { return errTODO }

// Close closes the connection.
func (c *Client) Close() error { return errTODO }

// Done is closed when the connection is gone.
func (c *Client) Done() <-chan struct{} { return nil }

// Read reads at the file's offset and advances it.
func (f *File) Read(p []byte) (int, error) { return 0, errTODO }

// Write writes at the file's offset and advances it; writes larger than
// the message size are split.
func (f *File) Write(p []byte) (int, error) { return 0, errTODO }

// Close closes the file.
func (f *File) Close() error { return errTODO }
