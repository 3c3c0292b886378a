from django.http import HttpRequest, HttpResponse


def show_order(request: HttpRequest, order_id: int) -> HttpResponse:
    if order_id > 10:
        raise LookupError(f"order {order_id} not found")  # Django answers 500 and logs it on django.request
    return HttpResponse(f"order {order_id}")
