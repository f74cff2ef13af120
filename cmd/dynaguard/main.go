// Command dynaguard makes, checks and documents the DynamoDB table that
// dynaguard's components share, and prints what a deployment needs: a
// least-privilege IAM policy, CloudFormation and Terraform for the table, and
// a new secret.
//
//	dynaguard table create|check|fix -table NAME
//	dynaguard doctor -table NAME
//	dynaguard iam-policy -table NAME [-components sessionstore,nonce,...] [-admin]
//	dynaguard cloudformation [-table NAME]
//	dynaguard terraform [-table NAME]
//	dynaguard secret [-rotate CURRENT]
//	dynaguard version
//
// Commands that talk to DynamoDB take the standard AWS configuration
// (credentials, AWS_REGION, AWS_ENDPOINT_URL_DYNAMODB); -region and -endpoint
// override it. The others make no call.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dynaguard/dynaguard"
)

// version is this release of dynaguard (see CHANGELOG.md).
const version = "v0.2.0"

// client is what the table commands call: the request-time API (a Table is
// built on it) and the table management calls, narrowed so that tests pass
// a DynamoDB Local client and the admin policy lists exactly these.
type client interface {
	dynaguard.API
	dynaguard.AdminAPI
	UpdateTable(ctx context.Context, in *dynamodb.UpdateTableInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateTableOutput, error)
	DescribeContinuousBackups(ctx context.Context, in *dynamodb.DescribeContinuousBackupsInput, opts ...func(*dynamodb.Options)) (*dynamodb.DescribeContinuousBackupsOutput, error)
}

var _ client = (*dynamodb.Client)(nil)

// exitError carries the exit status of a command that ran but found a
// problem (1), as opposed to a usage error (2).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

var errUsage = errors.New("usage")

const usage = `dynaguard — the table, IAM policy, templates and secret for dynaguard on DynamoDB

Usage:
  dynaguard table create -table NAME    create the table as the components expect it
  dynaguard table check  -table NAME    report every difference from the layout (exit 1 if any)
  dynaguard table fix    -table NAME    fix in place what can be fixed (TTL, the index), then check
  dynaguard doctor       -table NAME    check, plus production advice (PITR, deletion protection,
                                        encryption, billing mode, TTL)
  dynaguard iam-policy   -table NAME    a least-privilege IAM policy (JSON) for the runtime
                                        components (-components a,b), or -admin for table management
  dynaguard cloudformation              a CloudFormation template (JSON) for the table
  dynaguard terraform                   a Terraform configuration for the table
  dynaguard secret                      a new DYNAGUARD_SECRET value, and how to rotate it
  dynaguard version                     this release

Run "dynaguard COMMAND -h" for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, nil)
	stop()
	var ee exitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		os.Exit(ee.code)
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		msg := err.Error()
		if !strings.HasPrefix(msg, "dynaguard: ") {
			msg = "dynaguard: " + msg
		}
		fmt.Fprintln(os.Stderr, msg)
		os.Exit(1)
	}
}

// run executes one command. newClient, when not nil, replaces the client
// built from the AWS configuration (tests pass DynamoDB Local's).
func run(ctx context.Context, args []string, stdout, stderr io.Writer, newClient func() client) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	cmd, args := args[0], args[1:]
	e := &env{ctx: ctx, out: stdout, err: stderr, newClient: newClient}
	switch cmd {
	case "table":
		if len(args) == 0 {
			fmt.Fprint(stderr, usage)
			return errUsage
		}
		switch args[0] {
		case "create", "check", "fix":
			return e.table(args[0], args[1:])
		}
		fmt.Fprintf(stderr, "dynaguard table: unknown subcommand %q (create, check or fix)\n", args[0])
		return errUsage
	case "doctor":
		return e.doctor(args)
	case "iam-policy":
		return e.iamPolicy(args)
	case "cloudformation":
		return e.cloudFormation(args)
	case "terraform":
		return e.terraform(args)
	case "secret":
		return e.secret(args)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "dynaguard", moduleVersion())
		return nil
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "dynaguard: unknown command %q\n\n%s", cmd, usage)
	return errUsage
}

// moduleVersion is the version the binary was built from when go install
// recorded one, else the release constant.
func moduleVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return version
}

type env struct {
	ctx       context.Context
	out, err  io.Writer
	newClient func() client
}

// awsFlags are the connection flags of the commands that call DynamoDB.
type awsFlags struct {
	table    string
	region   string
	endpoint string
}

func (a *awsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.table, "table", "", "table name (required)")
	fs.StringVar(&a.region, "region", "", "AWS region (default: from the AWS configuration)")
	fs.StringVar(&a.endpoint, "endpoint", "", "DynamoDB endpoint, e.g. http://127.0.0.1:8000 for DynamoDB Local\n(default: AWS_ENDPOINT_URL_DYNAMODB, else AWS)")
}

func (e *env) client(a *awsFlags) (client, error) {
	if e.newClient != nil {
		return e.newClient(), nil
	}
	var opts []func(*config.LoadOptions) error
	if a.region != "" {
		opts = append(opts, config.WithRegion(a.region))
	}
	cfg, err := config.LoadDefaultConfig(e.ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	return dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		if a.endpoint != "" {
			o.BaseEndpoint = aws.String(a.endpoint)
		}
	}), nil
}

func (e *env) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("dynaguard "+name, flag.ContinueOnError)
	fs.SetOutput(e.err)
	return fs
}

func (e *env) parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.err, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return errUsage
	}
	return nil
}

func requireTable(e *env, fs *flag.FlagSet, table string) error {
	if table == "" {
		fmt.Fprintf(e.err, "%s: -table is required\n", fs.Name())
		fs.Usage()
		return errUsage
	}
	return nil
}
