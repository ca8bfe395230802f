package cli

import (
	"fmt"
	"time"
)

// Option is one row of a command's option table (see Options): the
// names, where the value goes, and the help text. The variable's value
// when Options is called is the option's default.
type Option struct {
	Short, Long string
	Value       any // *bool, *int, *string or *time.Duration
	Usage       string
}

// Options declares the options of table, in its order, which is the
// help's. A Value of another type is a bug in the command: it panics, as
// pflag does on a name declared twice.
func (c *Command) Options(table []Option) {
	for _, o := range table {
		switch p := o.Value.(type) {
		case *bool:
			c.BoolVarP(p, o.Long, o.Short, *p, o.Usage)
		case *int:
			c.IntVarP(p, o.Long, o.Short, *p, o.Usage)
		case *string:
			c.StringVarP(p, o.Long, o.Short, *p, o.Usage)
		case *time.Duration:
			c.DurationVarP(p, o.Long, o.Short, *p, o.Usage)
		default:
			panic(fmt.Sprintf("cli: option --%s: no flag for a %T", o.Long, o.Value))
		}
	}
}

// KeyOption declares -k, the cluster key of the commands that talk 9P to
// the master when there is no mount (client.Options.KeyFile).
func (c *Command) KeyOption(p *string) {
	c.StringVarP(p, "key", "k", "", "cluster key `file` for 9P (default $BPROC_KEY or /etc/bproc/cluster.key)")
}
