// Package tollgate_test enforces the import rules of ARCHITECTURE.md, so the
// package map stays true as the code grows.
package tollgate_test

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/tollgate/tollgate/"

// leaves may not import one another: the gateway or cmd/server connects them.
var leaves = map[string]bool{"pkg/tokens": true, "pkg/router": true, "pkg/budget": true, "pkg/semcache": true, "pkg/providers": true, "pkg/keys": true, "pkg/audit": true, "pkg/responses": true, "pkg/guardrails": true}

// packages walks every Go package of the module (non-test files) and returns
// dir → imports, and dir → whether it has a package doc comment.
func packages(t *testing.T) (map[string][]string, map[string]bool) {
	t.Helper()
	imports := map[string][]string{}
	documented := map[string]bool{}
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules") && path != "." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		dir := filepath.ToSlash(filepath.Dir(path))
		if f.Doc != nil {
			documented[dir] = true
		} else if _, ok := documented[dir]; !ok {
			documented[dir] = false
		}
		for _, imp := range f.Imports {
			imports[dir] = append(imports[dir], strings.Trim(imp.Path.Value, `"`))
		}
		if _, ok := imports[dir]; !ok {
			imports[dir] = nil
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return imports, documented
}

// leafOf returns the leaf package a directory belongs to ("" if none).
func leafOf(dir string) string {
	for l := range leaves {
		if dir == l || strings.HasPrefix(dir, l+"/") {
			return l
		}
	}
	return ""
}

func TestImportRules(t *testing.T) {
	imports, _ := packages(t)
	var problems []string
	for dir, imps := range imports {
		for _, imp := range imps {
			own := strings.TrimPrefix(imp, module)
			isOwn := own != imp
			switch {
			case strings.HasPrefix(imp, "github.com/gin-gonic/") && dir != "pkg/httpapi" && !strings.HasPrefix(dir, "cmd/"):
				problems = append(problems, dir+" imports Gin: only pkg/httpapi and cmd/ may")
			case dir == "pkg/llm" && isOwn:
				problems = append(problems, "pkg/llm imports "+own+": the vocabulary imports nothing of ours")
			case isOwn && leafOf(dir) != "" && leafOf(own) != "" && leafOf(dir) != leafOf(own):
				problems = append(problems, dir+" imports "+own+": leaf packages do not import each other")
			case isOwn && strings.HasPrefix(dir, "pkg/") && (own == "pkg/gateway" || own == "pkg/httpapi" || strings.HasPrefix(own, "cmd/")) && dir != "pkg/httpapi":
				problems = append(problems, dir+" imports "+own+": only the HTTP layer and cmd/ sit above the gateway")
			case dir == "pkg/config" && isOwn && own != "pkg/guardrails":
				// pkg/guardrails, a stdlib-only leaf, is the one exception:
				// Validate compiles the configured guards' patterns and word
				// lists with it, so a bad one is reported with its path at
				// load rather than by the gateway at start.
				problems = append(problems, "pkg/config imports "+own+": config imports only stdlib, yaml and pkg/guardrails")
			}
		}
	}
	sort.Strings(problems)
	for _, p := range problems {
		t.Error(p)
	}
}

func TestEveryPackageSaysWhatItOwns(t *testing.T) {
	_, documented := packages(t)
	for dir, ok := range documented {
		if !ok && dir != "." {
			t.Errorf("%s has no package doc comment", dir)
		}
	}
}
