package cli

import (
	"fmt"
	"strings"
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

// TakesValue reports whether the option word arg ("-b", "--buffer",
// "-pb") leaves its value to the next argument, as Parse reads it.
// Commands whose operands may look like options ("-1", the master) use
// it to step over the options' values.
func (c *Command) TakesValue(arg string) bool {
	if name, ok := strings.CutPrefix(arg, "--"); ok {
		f := c.Lookup(name)
		return f != nil && f.NoOptDefVal == ""
	}
	if len(arg) < 2 || arg[0] != '-' {
		return false
	}
	for i := 1; i < len(arg); i++ {
		f := c.ShorthandLookup(arg[i : i+1])
		if f == nil {
			return false
		}
		if f.NoOptDefVal == "" {
			return i == len(arg)-1 // else the rest of the word is the value
		}
	}
	return false
}
