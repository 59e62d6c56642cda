package manage

import "fmt"

// plural is n with the noun's singular or plural form: "1 project",
// "2 projects", "0 projects".
func plural[N ~int | ~int64](n N, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
