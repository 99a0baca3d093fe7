// deploy-check: the two deploy/ checks that need Go libraries, built by
// scripts/check-deploy. `compose FILE` loads a Compose file as `docker compose
// config` does (compose-go, the library Docker Compose uses) and prints it;
// `kustomize DIR` builds a kustomization as `kubectl kustomize` does (kustomize's
// own API) and prints the resources it makes.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/cli"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: deploy-check compose FILE | kustomize DIR")
		os.Exit(2)
	}
	var out []byte
	var err error
	switch os.Args[1] {
	case "compose":
		out, err = compose(os.Args[2])
	case "kustomize":
		out, err = kustomize(os.Args[2])
	default:
		err = fmt.Errorf("unknown check %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "deploy-check %s %s: %v\n", os.Args[1], os.Args[2], err)
		os.Exit(1)
	}
	os.Stdout.Write(out)
}

func compose(file string) ([]byte, error) {
	options, err := cli.NewProjectOptions([]string{file}, cli.WithOsEnv)
	if err != nil {
		return nil, err
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		return nil, err
	}
	return project.MarshalYAML()
}

func kustomize(dir string) ([]byte, error) {
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, err
	}
	return resources.AsYaml()
}
