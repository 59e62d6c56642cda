package mgmtapi

import "testing"

func TestNewPagination(t *testing.T) {
	tests := []struct {
		name              string
		page, size, total int
		want              Pagination
	}{
		{"empty", 1, 20, 0, Pagination{Page: 1, PageSize: 20}},
		{"one partial page", 1, 20, 5, Pagination{Page: 1, PageSize: 20, TotalCount: 5, TotalPages: 1}},
		{"exact pages", 1, 10, 20, Pagination{Page: 1, PageSize: 10, TotalCount: 20, TotalPages: 2, HasNext: true}},
		{"middle page", 2, 1, 3, Pagination{Page: 2, PageSize: 1, TotalCount: 3, TotalPages: 3, HasNext: true, HasPrev: true}},
		{"last page", 3, 1, 3, Pagination{Page: 3, PageSize: 1, TotalCount: 3, TotalPages: 3, HasPrev: true}},
		{"past the end", 5, 10, 11, Pagination{Page: 5, PageSize: 10, TotalCount: 11, TotalPages: 2, HasPrev: true}},
		{"no size", 1, 0, 7, Pagination{Page: 1, TotalCount: 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NewPagination(tt.page, tt.size, tt.total); got != tt.want {
				t.Errorf("NewPagination(%d, %d, %d) = %+v, want %+v", tt.page, tt.size, tt.total, got, tt.want)
			}
		})
	}
}
